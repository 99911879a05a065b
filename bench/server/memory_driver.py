"""Records millions of unique executions straight into an Aggregator (default configuration:
dedup horizon 10 m, at most 5,000,000 ids remembered) in a process of its own, and prints the
process's RSS as JSON lines along the way. No gRPC and no validation: the memory held by the
aggregator's state, measured faster than through the server.

    python -m server.memory_driver --total 10000000 --every 1000000     (cwd: bench/)
"""

from __future__ import annotations

import argparse
import json
import os
import time

from cugar_metrics.aggregator import Aggregator
from cugar_metrics.model import Execution
from cugar_metrics.validation import Limits, validate_execution
from server.procinfo import peak_rss_bytes, rss_bytes
from server.workload import realistic_templates, unique_ids


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--total", type=int, default=10_000_000)
    parser.add_argument("--every", type=int, default=1_000_000, help="report RSS every N")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=3600.0,
        help="stop after this long (the last line says how far it got)",
    )
    args = parser.parse_args()

    pid = os.getpid()
    now = time.time()
    aggregator = Aggregator(start_time=now)
    models: list[Execution] = []
    for t in realistic_templates():
        model, violations = validate_execution(t, "execution", Limits(), now)
        assert model is not None, violations
        models.append(model)
    fields = [
        (
            m.profile,
            m.outcome,
            m.error_type,
            m.duration,
            m.steps,
            m.budget,
            m.approvals,
            m.tool_calls,
        )
        for m in models
    ]
    ids = unique_ids("mem-")
    k = len(fields)
    done = 0
    t0, c0 = time.perf_counter(), time.process_time()
    print(json.dumps({"executions": 0, "rss": rss_bytes(pid), "elapsed_s": 0.0}), flush=True)
    deadline = time.perf_counter() + args.max_seconds
    stopped = False
    while done < args.total and not stopped:
        n = min(args.batch_size, args.total - done)
        batch = [Execution(next(ids), *fields[(done + j) % k]) for j in range(n)]
        results = aggregator.record(batch, time.time())
        assert results[-1] == "accepted"
        done += n
        stopped = time.perf_counter() > deadline
        if done % args.every == 0 or done == args.total or stopped:
            del batch, results
            snap = aggregator.snapshot(time.time())
            print(
                json.dumps(
                    {
                        "executions": done,
                        "rss": rss_bytes(pid),
                        "peak_rss": peak_rss_bytes(pid),
                        "elapsed_s": round(time.perf_counter() - t0, 2),
                        "cpu_s": round(time.process_time() - c0, 2),
                        "accepted": snap.ingest["accepted"],
                        "dedup_entries": snap.dedup_entries,
                        "dedup_evicted": snap.dedup_evicted,
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
