"""The real server's memory stays flat under load at the caps (every capped series changing
every 10 s, values from 1 us to 1 h): window memory is bounded by the caps, not by time.

Two minutes at 1000 executions/s with a 60-s dedup horizon (so the dedup index is full after
the first minute): from minute 1 to minute 2 the RSS may grow by the 10-s slots that fill
(6 of them, a few MiB), not by a copy of every distribution every 10 s (the leak this guards
against added about 25 MiB a minute at this load).
"""

from __future__ import annotations

from pathlib import Path

from tests.process.windows.load import drive
from tests.support.serverproc import launch

MIB = 2**20
#: Growth allowed from minute 1 to minute 2: the 10-s slots that fill (with their tier's running
#: sums) take about 5 MiB a minute at this load (bench/results/windows.md), and the allocator
#: and the server's collection thresholds (server._tune_gc) move RSS by several MiB more on a
#: loaded machine (8.3 and 12.2 MiB were seen there). The leak this guards against added 25 to
#: 28 MiB a minute.
MARGIN = 16 * MIB


def test_rss_is_flat_from_minute_one_to_minute_two(tmp_path: Path) -> None:
    server = launch(tmp_path, "--dedup-horizon", "60s", name="windows")
    try:
        samples = drive(server.target, server.proc.pid, 120, rate=1000, every=10)
    finally:
        assert server.stop() == 0
    minute1 = next(s for s in samples if s.seconds >= 60)
    last = samples[-1]
    assert last.seconds >= 120 and last.sent >= 100_000  # the load ran at the caps
    trace = [(s.seconds, round(s.rss / MIB, 1)) for s in samples]
    assert last.rss - minute1.rss <= MARGIN, trace
