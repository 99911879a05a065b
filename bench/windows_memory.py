"""Window memory and read/ingest speed of the aggregator at the cardinality caps, in process.

Drives an Aggregator over a simulated hour (default) in which every capped series changes in
every 10-s tick: 50 profiles x {success, failure}, 200 domain/tool pairs, 50 profiles x 4
approval decisions, all 100 error types, values spread log-uniformly from 1 us to 1 h. In the
last 10 simulated minutes, 5,000,000 more ids go into the dedup index (its cap). Prints RSS
along the way, then the read paths at the full caps (GetDashboard data for 5-minute and
1-hour windows, /metrics exposition) and the ingest cost per execution, as JSON lines.

    python bench/windows_memory.py [--minutes 60] [--per-tick 1000] [--dedup-ids 5000000]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import time

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from server.procinfo import rss_bytes

from cugar_metrics.aggregator import Aggregator, build_dashboard
from cugar_metrics.exposition import AggregatorCollector
from cugar_metrics.model import Approval, Budget, Execution, ToolCall

DECISIONS = ("approved", "denied", "timeout", "cancelled")
T0 = 1_800_000_000.0  # a 10 s boundary


def spread(rng: random.Random) -> float:
    """Log-uniform from 1 us to 1 h."""
    return math.exp(rng.uniform(math.log(1e-6), math.log(3600.0)))


def tick_executions(rng: random.Random, tick: int, n: int) -> list[Execution]:
    """n executions that touch every capped series (n >= 400 covers them all)."""
    out = []
    for i in range(n):
        profile = i % 50
        decision = DECISIONS[(i // 50) % 4]
        failed = (i // 200) % 2 == 1
        pair = (i + tick) % 200
        out.append(
            Execution(
                execution_id=f"t{tick}-{i}",
                profile=f"profile_{profile:02d}",
                outcome="failure" if failed else "success",
                error_type=f"error_{(i + tick) % 100:03d}" if failed else "",
                duration=spread(rng),
                steps=rng.randint(1, 400),
                budget=Budget(rng.uniform(0, 20), 10.0, False),
                approvals=(Approval(decision, spread(rng), "execute"),),
                tool_calls=(
                    ToolCall(
                        f"tool_{pair % 10}", f"domain_{pair // 10:02d}", "success", spread(rng)
                    ),
                ),
            )
        )
    return out


def mib(n: int) -> float:
    return round(n / 2**20, 1)


def p99_ms(samples: list[float]) -> float:
    return round(float(np.percentile(np.array(samples) * 1000, 99)), 2)


def ingest_timing(rounds: int = 5, n: int = 20_000) -> None:
    """Aggregator.record in batches of 500 inside one 10-s tick (no window tick on the way):
    the ingest hot path alone, best of `rounds`, beside a do-nothing loop over the same
    batches."""
    rng = random.Random(3)
    executions = tick_executions(rng, 0, n)
    batches = [executions[k : k + 500] for k in range(0, n, 500)]
    best = baseline = float("inf")
    for _ in range(rounds):
        agg = Aggregator(start_time=T0)
        agg.record(tick_executions(rng, 1, 400), T0 + 1)  # every series exists
        t = time.perf_counter()
        for b in batches:
            agg.record(b, T0 + 2)
        best = min(best, time.perf_counter() - t)
        t = time.perf_counter()
        for b in batches:
            [e.execution_id for e in b]
        baseline = min(baseline, time.perf_counter() - t)
    print(
        json.dumps(
            {
                "event": "ingest",
                "executions": n,
                "us_per_execution": round(best / n * 1e6, 3),
                "baseline_us_per_execution": round(baseline / n * 1e6, 3),
            }
        ),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=60.0, help="simulated time")
    parser.add_argument("--per-tick", type=int, default=1000, help="executions per 10 s tick")
    parser.add_argument("--dedup-ids", type=int, default=5_000_000)
    parser.add_argument("--reads", type=int, default=200, help="samples per read path")
    parser.add_argument(
        "--ingest-only", action="store_true", help="only the ingest timing (no hour, no reads)"
    )
    args = parser.parse_args()
    ingest_timing()
    if args.ingest_only:
        return
    pid = os.getpid()
    rng = random.Random(1)
    gc.collect()
    base = rss_bytes(pid)
    agg = Aggregator(start_time=T0)
    ticks = int(args.minutes * 6)
    extra_ticks = min(ticks, 60)
    extra_per_tick = args.dedup_ids // extra_ticks if extra_ticks else 0
    hrng = np.random.default_rng(2)
    record_s = 0.0
    recorded = 0
    print(json.dumps({"event": "start", "rss_mib": mib(base)}), flush=True)
    for tick in range(ticks):
        batch = tick_executions(rng, tick, args.per_tick)
        now = T0 + 10 * tick + 1
        t = time.perf_counter()
        for k in range(0, len(batch), 500):
            agg.record(batch[k : k + 500], now + k / len(batch))
        record_s += time.perf_counter() - t
        recorded += len(batch)
        if tick >= ticks - extra_ticks and extra_per_tick:
            hashes = hrng.integers(0, 2**63, size=extra_per_tick, dtype=np.uint64).tolist()
            with agg._lock:  # straight into the index: ids only, no series
                agg._dedup.check_and_add(hashes, now + 5)
        if tick % 60 == 59 or tick == ticks - 1:
            gc.collect()
            print(
                json.dumps(
                    {
                        "event": "rss",
                        "simulated_minutes": round((tick + 1) / 6, 1),
                        "rss_mib": mib(rss_bytes(pid)),
                        "dedup_entries": len(agg._dedup),
                    }
                ),
                flush=True,
            )
    end = T0 + 10 * ticks + 5
    gc.collect()
    final = rss_bytes(pid)
    print(
        json.dumps(
            {
                "event": "memory",
                "simulated_minutes": args.minutes,
                "executions": recorded,
                "rss_mib": mib(final),
                "growth_mib": mib(final - base),
                "dedup_entries": len(agg._dedup),
                "ingest_us_per_execution": round(record_s / recorded * 1e6, 2),
            }
        ),
        flush=True,
    )
    # Read paths at the full caps. "warm": the clock moves within one 10-s tick (a dashboard
    # polled several times per tick); "cold": every sample in a new tick, with one more
    # batch recorded first (the slots change, every window merges its slots again).
    registry = CollectorRegistry()
    clock = [end]
    registry.register(AggregatorCollector(agg.snapshot, lambda: clock[0]))
    reads: dict[str, list[float]] = {}
    for mode in ("warm", "cold"):
        for i in range(args.reads):
            if mode == "warm":
                clock[0] = end + i * 1e-3
            else:
                clock[0] = end + 10 * (i + 1)
                agg.record(tick_executions(rng, ticks + i, 400), clock[0])
            for name, seconds in (("dashboard_5m", 300), ("dashboard_1h", 3600), ("metrics", 0)):
                if mode == "cold" and not seconds:
                    continue
                t = time.perf_counter()
                if seconds:
                    build_dashboard(agg.window(clock[0], seconds))
                else:
                    generate_latest(registry)
                reads.setdefault(f"{name}_{mode}", []).append(time.perf_counter() - t)
    print(
        json.dumps({"event": "reads", **{f"{k}_p99_ms": p99_ms(v) for k, v in reads.items()}}),
        flush=True,
    )


if __name__ == "__main__":
    main()
