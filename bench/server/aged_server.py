"""The real server (cugar_metrics.server.create_server, default configuration) as it is after an
hour or more at the full cardinality caps, built in seconds for the benchmark.

Its clock starts `--history` seconds in the past; the history is recorded straight into its
Aggregator (`now` is a parameter of the aggregator), one batch every 10 s of simulated time,
each batch touching every series at the caps: 50 profiles, 20 domains, 200 domain/tool pairs,
100 error types. Then the clock joins real time and the server answers RPCs and /metrics, so a
1-hour GetDashboard window subtracts a checkpoint that is one hour old, as on a long-running
replica. Writes {"grpc_port", "metrics_port", "pid", ...} to --ready-file; SIGTERM stops it.

    python -m server.aged_server --ready-file /tmp/aged.json          (cwd: bench/)
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import signal
import time
from typing import Any

from cugar_metrics.aggregator import CHECKPOINT_SECONDS
from cugar_metrics.config import Config
from cugar_metrics.server import create_server
from cugar_metrics.validation import Limits, validate_execution
from server.procinfo import rss_bytes
from server.workload import cap_filling_templates, unique_ids


def replace(execution: Any, **changes: Any) -> Any:
    """A copy of a domain-model execution with some fields changed (dataclass or named tuple)."""
    if dataclasses.is_dataclass(execution):
        return dataclasses.replace(execution, **changes)
    return execution._replace(**changes)


class ShiftedClock:
    """time.time() plus an offset that the benchmark sets back to 0 after the backfill."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def __call__(self) -> float:
        return time.time() + self.offset


async def _main(args: argparse.Namespace) -> None:
    clock = ShiftedClock(-args.history)
    running = await create_server(Config(grpc_port=0, metrics_port=0, replica="aged"), clock)
    aggregator = running.aggregator
    rss_before = rss_bytes(os.getpid())
    templates = cap_filling_templates()
    now = clock()
    models = []
    for t in templates:
        model, violations = validate_execution(t, "execution", Limits(), now)
        assert model is not None, violations
        models.append(model)
    ids = unique_ids("aged-")
    t0 = time.perf_counter()
    steps = int(args.history // CHECKPOINT_SECONDS)
    recorded = 0
    for k in range(steps):
        # Durations vary from step to step, so the sketches of successive checkpoints differ.
        batch = [
            replace(m, execution_id=next(ids), duration=m.duration * (1 + (k * 7 + i) % 13 / 10))
            for i, m in enumerate(models)
        ]
        aggregator.record(batch, aggregator.start_time + k * CHECKPOINT_SECONDS + 1)
        recorded += len(batch)
    clock.offset = 0.0
    aggregator.record([replace(m, execution_id=next(ids)) for m in models], clock())
    recorded += len(models)
    info = {
        "grpc_port": running.grpc_port,
        "metrics_port": running.metrics_port,
        "pid": os.getpid(),
        "history_s": args.history,
        "recorded": recorded,
        "window_slots": aggregator.slot_count(),
        "backfill_s": round(time.perf_counter() - t0, 2),
        "rss_before_backfill": rss_before,
        "rss_after_backfill": rss_bytes(os.getpid()),
    }
    with open(args.ready_file + ".tmp", "w") as f:
        json.dump(info, f)
    os.replace(args.ready_file + ".tmp", args.ready_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await running.stop(1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ready-file", required=True)
    parser.add_argument(
        "--history",
        type=float,
        default=3700.0,
        help="seconds of simulated history before real time",
    )
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
