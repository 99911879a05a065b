"""The recorder's delivery contract (clients/README.md) against real server processes that
start late, stop, or freeze: batches that fail with a retryable code are kept and sent again
with the same ids until delivered, the buffer overflows (oldest first), or close() times out.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cugar_metrics_client import BatchRecorder, Client, Execution
from tests.support.serverproc import launch


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} in {timeout:.0f} s"
        time.sleep(0.02)


def numbered(profile: str, first: int, last: int) -> list[Execution]:
    return [
        Execution(profile, "success", 0.5, execution_id=f"{profile}-{n}")
        for n in range(first, last + 1)
    ]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def totals(target: str) -> dict[str, int]:
    """Executions per profile, as the server counted them."""
    with Client(target) as client:
        dashboard = client.get_dashboard()
    return {p.profile: int(p.total) for p in dashboard.profiles}


def test_an_outage_longer_than_the_call_retries_loses_nothing(tmp_path: Path) -> None:
    """The server stops for several failed sends (each ~1.5 s of the channel's own retries):
    the recorder keeps the batch, backs off, and delivers it to the next server."""
    first = launch(tmp_path, name="before")
    recorder = BatchRecorder(first.target, flush_interval=0.1)
    try:
        for execution in numbered("outage", 1, 5):
            recorder.record(execution)
        wait_for(lambda: recorder.stats().accepted == 5, "first delivery")
    finally:
        assert first.stop() == 0, first.output()
    for execution in numbered("outage", 6, 15):
        assert recorder.record(execution) is True
    wait_for(lambda: recorder.stats().batches_retried >= 3, "three failed sends")
    assert recorder.stats().dropped == 0

    second = launch(tmp_path, name="after", grpc_port=first.grpc_port)
    try:
        wait_for(lambda: recorder.stats().accepted == 15, "delivery after the outage")
        assert recorder.close() == 0
        stats = recorder.stats()
        assert (stats.accepted, stats.duplicate, stats.dropped, stats.batches_failed) == (
            15,
            0,
            0,
            0,
        )
        assert totals(second.target) == {"outage": 10}
    finally:
        assert second.stop() == 0, second.output()


def test_close_keeps_retrying_until_the_server_answers(tmp_path: Path) -> None:
    """close() with nothing listening does not give up at the first failure: it retries until
    a server starts on the port, within its timeout, and reports 0 dropped."""
    port = free_port()
    recorder = BatchRecorder(f"127.0.0.1:{port}", flush_interval=60.0)
    for execution in numbered("closing", 1, 3):
        recorder.record(execution)
    result: dict[str, int] = {}
    closer = threading.Thread(target=lambda: result.update(dropped=recorder.close(timeout=60)))
    closer.start()
    try:
        wait_for(lambda: recorder.stats().batches_retried >= 1, "a failed send while closing")
        assert closer.is_alive(), "close() gave up after a failure"
        server = launch(tmp_path, name="late", grpc_port=port)
    finally:
        closer.join(90)
    try:
        assert result == {"dropped": 0}
        assert totals(server.target) == {"closing": 3}
    finally:
        assert server.stop() == 0, server.output()


def test_a_full_buffer_drops_the_oldest_not_in_flight(tmp_path: Path, caplog: Any) -> None:
    """Held = in flight + buffered, at most max_buffer. With the server frozen (SIGSTOP), the
    first execution is in flight and the second waits for the only call slot; the third is
    buffered. The fourth and fifth each push out the oldest buffered one (3, then 4)."""
    caplog.set_level(logging.INFO, logger="cugar_metrics_client")
    server = launch(tmp_path, name="frozen")
    try:
        with Client(server.target) as client:
            client.get_dashboard()  # connected before the freeze
            recorder = BatchRecorder(
                client, max_batch=1, max_buffer=3, max_in_flight=1, flush_interval=60.0
            )
            os.kill(server.proc.pid, signal.SIGSTOP)
            try:
                (one, two, three, four, five) = [
                    Execution(f"held_{n}", "success", 0.5, execution_id=f"held-{n}")
                    for n in range(1, 6)
                ]
                assert recorder.record(one) is True
                wait_for(lambda: recorder.stats().in_flight == 1, "the first call")
                assert recorder.record(two) is True
                wait_for(lambda: recorder.stats().in_flight == 2, "the second batch taken")
                assert recorder.record(three) is True
                assert recorder.stats().buffered == 1
                assert recorder.record(four) is True
                assert recorder.record(five) is True
                stats = recorder.stats()
                assert (stats.in_flight, stats.buffered, stats.dropped_full) == (2, 1, 2)
            finally:
                os.kill(server.proc.pid, signal.SIGCONT)
            assert recorder.close() == 2
        assert totals(server.target) == {"held_1": 1, "held_2": 1, "held_5": 1}
        closing = [r for r in caplog.records if "recorder closed" in r.getMessage()]
        assert [r.cugar_dropped_total for r in closing] == [2]  # type: ignore[attr-defined]
    finally:
        assert server.stop() == 0, server.output()


def test_retries_resend_the_same_ids(tmp_path: Path) -> None:
    """Attempts of 0.5 s against a server frozen for 2 s time out; their retries carry the
    same ids, so the server counts each of the 20 exactly once (a timed-out attempt that
    arrived makes its retry a duplicate, never a second execution)."""
    server = launch(tmp_path, name="slow")
    try:
        with Client(server.target) as client:
            client.get_dashboard()
            recorder = BatchRecorder(client, timeout=0.5, flush_interval=60.0)
            os.kill(server.proc.pid, signal.SIGSTOP)
            try:
                for execution in numbered("same_ids", 1, 20):
                    recorder.record(execution)
                recorder.flush(timeout=0)
                wait_for(lambda: recorder.stats().batches_retried >= 2, "two timed-out sends")
            finally:
                os.kill(server.proc.pid, signal.SIGCONT)
            assert recorder.close() == 0
            stats = recorder.stats()
            assert stats.accepted + stats.duplicate == 20
            assert stats.accepted >= 1
        assert totals(server.target) == {"same_ids": 20}
    finally:
        assert server.stop() == 0, server.output()


def test_close_cancels_calls_it_does_not_own(silent_target: str) -> None:
    """On a Client the recorder does not own (so close() does not close its channel), calls
    still unanswered at the close timeout are cancelled and counted: close() returns the
    exact number and nothing stays in flight."""
    with Client(silent_target, timeout=60.0) as client:
        recorder = BatchRecorder(client, max_batch=5, flush_interval=60.0, timeout=60.0)
        for execution in numbered("unanswered", 1, 12):
            recorder.record(execution)
        wait_for(lambda: recorder.stats().in_flight == 10, "two calls in flight")
        assert recorder.close(timeout=0.2) == 12
        stats = recorder.stats()
        assert (stats.in_flight, stats.buffered, stats.dropped_failed) == (0, 0, 12)
