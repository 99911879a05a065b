"""Where a cluster GetDashboard spends its time, in process, stage by stage.

Three aggregators at the full caps (50 profiles x 2 outcomes, 200 domain/tool pairs, 100
error types, 50 models, 4 approval decisions, values log-uniform from 1 us to 1 h), fed
`--minutes` of simulated time, then per sample: the peer's window, its encoding and
decoding (state format versions 1 and 2), the merge (the aggregator's, and the cluster's
with the caps applied after it), the dashboard and its proto. Prints one JSON line per stage
(median and p99 in ms) and, with `--profile`, the top of cProfile for the whole path.

    python bench/cluster_stages.py [--minutes 15] [--per-tick 500] [--samples 50] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import math
import pstats
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cugar_metrics.aggregator import Aggregator, build_dashboard, merge_windows  # noqa: E402
from cugar_metrics.aggregator.windowwire import (  # noqa: E402
    decode_window,
    encode_body,
    encode_window,
)
from cugar_metrics.clustermerge import merge_cluster  # noqa: E402
from cugar_metrics.model import (  # noqa: E402
    Approval,
    Budget,
    Execution,
    ModelCall,
    ToolCall,
)
from cugar_metrics.service import dashboard_to_proto  # noqa: E402

DECISIONS = ("approved", "denied", "timeout", "cancelled")
T0 = 1_800_000_000.0  # a 10 s boundary


def spread(rng: random.Random) -> float:
    """Log-uniform from 1 us to 1 h."""
    return math.exp(rng.uniform(math.log(1e-6), math.log(3600.0)))


def cap_executions(rng: random.Random, prefix: str, seq: int, n: int) -> list[Execution]:
    """n executions (n >= 400 covers every capped series) with fresh ids."""
    out = []
    for i in range(n):
        failed = (i // 200) % 2 == 1
        pair = (i + seq) % 200
        out.append(
            Execution(
                execution_id=f"{prefix}-{seq}-{i}",
                profile=f"profile_{i % 50:02d}",
                outcome="failure" if failed else "success",
                error_type=f"error_{(i + seq) % 100:03d}" if failed else "",
                duration=spread(rng),
                steps=rng.randint(1, 300),
                budget=Budget(rng.uniform(0, 20), 10.0, False),
                approvals=(Approval(DECISIONS[(i // 50) % 4], spread(rng), "execute"),),
                tool_calls=(
                    ToolCall(
                        f"tool_{pair % 10}", f"domain_{pair // 10:02d}", "success", spread(rng)
                    ),
                ),
                model_calls=(
                    ModelCall(
                        f"provider_{i % 5}",
                        f"model_{(i + seq) % 50:02d}",
                        "chat",
                        "success",
                        spread(rng),
                        spread(rng),
                        100,
                        50,
                        0,
                        0,
                        0.01,
                    ),
                ),
            )
        )
    return out


def loaded(minutes: float, per_tick: int, seed: int) -> Aggregator:
    rng = random.Random(seed)
    agg = Aggregator(start_time=T0)
    ticks = int(minutes * 6)
    for tick in range(ticks):
        agg.record(cap_executions(rng, f"r{seed}", tick, per_tick), T0 + tick * 10 + 1)
    return agg


def timed(samples: int, fn: Callable[[], Any]) -> dict[str, float]:
    out = []
    for _ in range(samples):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    a = np.array(out) * 1000
    return {
        "median_ms": round(float(np.median(a)), 2),
        "p99_ms": round(float(np.percentile(a, 99)), 2),
    }


def stages(aggs: list[Aggregator], now: float, seconds: float, samples: int, profile: bool) -> None:
    """Times each stage of a cluster GetDashboard for one window; prints JSON lines."""
    caps = aggs[0].caps
    windows = [a.window(now, seconds) for a in aggs]
    blobs = {v: [encode_window(w, v) for w in windows[1:]] for v in (1, 2)}
    decoded = [decode_window(b) for b in blobs[2]]
    merged = merge_cluster([windows[0], *decoded], caps)
    d = build_dashboard(merged)
    body = encode_body(windows[1].current)
    steps: dict[str, Callable[[], Any]] = {
        "window (per replica)": lambda: aggs[1].window(now, seconds),
        "encode v1 (per peer)": lambda: encode_window(windows[1], 1),
        "decode v1 (per peer)": lambda: decode_window(blobs[1][0], 1),
        "encode v2 body (per peer, cached per tick)": lambda: encode_body(windows[1].current),
        "encode v2 header + cached body (per peer)": lambda: encode_window(windows[1], 2, body),
        "decode v2 (per peer)": lambda: decode_window(blobs[2][0], 2),
        "merge_windows, aggregator (3 windows)": lambda: merge_windows([windows[0], *decoded]),
        "merge_cluster: merge + caps (3 windows)": lambda: merge_cluster(
            [windows[0], *decoded], caps
        ),
        "build_dashboard": lambda: build_dashboard(merged),
        "dashboard_to_proto": lambda: dashboard_to_proto(d, "r0"),
    }
    sizes = {f"state_bytes_v{v}": len(b[0]) for v, b in blobs.items()}
    print(json.dumps({"window": seconds, **sizes}), flush=True)
    for name, fn in steps.items():
        print(json.dumps({"window": seconds, "stage": name, **timed(samples, fn)}), flush=True)
    if profile:

        def whole() -> None:
            ws = [a.window(now, seconds) for a in aggs]
            back = [decode_window(encode_window(w)) for w in ws[1:]]
            dashboard_to_proto(build_dashboard(merge_cluster([ws[0], *back], caps)), "r0")

        prof = cProfile.Profile()
        prof.enable()
        for _ in range(10):
            whole()
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--per-tick", type=int, default=500)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    aggs = [loaded(args.minutes, args.per_tick, seed) for seed in (1, 2, 3)]
    now = T0 + args.minutes * 60 + 5
    for seconds in (3600.0, 300.0):
        stages(aggs, now, seconds, args.samples, args.profile)


if __name__ == "__main__":
    main()
