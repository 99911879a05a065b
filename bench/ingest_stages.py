"""CPU per execution of each stage of the RecordExecutions path, in one process.

Runs the stages the servicer runs for a batch, one after the other, on batches of 500 unique
executions (routine: one tool call; rich: five tool calls and an approval), and times each
with the process's CPU clock. No gRPC: this isolates the server's own work from the transport
(bench/ingest_speed.py measures the whole path beside a do-nothing servicer).

  parse      RecordExecutionsRequest.FromString (what grpc does before the servicer runs)
  validate   validation.validate_executions (the domain values, or the violations)
  id hash    the 64-bit hash of every execution_id (part of `record`, shown on its own)
  record     Aggregator.record: dedup and aggregation
  respond    the RecordExecutionsResponse, serialized

    .venv/bin/python bench/ingest_stages.py [--batches 200] [--repeat 5]

Stages are interleaved batch by batch and the best of `--repeat` rounds is kept per stage,
which filters out the other processes of a shared machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from server.workload import BatchEncoder, rich_templates, routine_templates

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar_metrics import validation
from cugar_metrics.aggregator import Aggregator
from cugar_metrics.aggregator.dedup import id_hash


def validate(
    messages: object, limits: validation.Limits, now: float
) -> tuple[list[object], dict[int, object]]:
    """The batch validation of the tree this runs in (item by item before it existed)."""
    batch = getattr(validation, "validate_executions", None)
    if batch is not None:
        return batch(messages, "executions", limits, now)
    items: list[object] = []
    refused: dict[int, object] = {}
    for i, m in enumerate(messages):
        e, v = validation.validate_execution(m, f"executions[{i}]", limits, now)
        items.append(e)
        if v:
            refused[i] = v
    return items, refused


STAGES = ("parse", "validate", "id hash", "record", "respond")


def measure(kind: str, batches: int) -> dict[str, float]:
    templates = routine_templates() if kind == "routine" else rich_templates()
    encoder = BatchEncoder(templates, f"{kind[0]}-")
    datas = [encoder.batch(500) for _ in range(batches)]
    aggregator = Aggregator(start_time=time.time())
    limits = validation.Limits()
    spent = dict.fromkeys(STAGES, 0.0)
    clock = time.process_time
    for data in datas:
        now = time.time()
        t0 = clock()
        request = pb.RecordExecutionsRequest.FromString(data)
        t1 = clock()
        items, refused = validate(request.executions, limits, now)
        t2 = clock()
        for e in items:
            id_hash(e.execution_id)
        t3 = clock()
        valid = [e for e in items if e is not None]
        results = aggregator.record(valid, now)
        t4 = clock()
        pb.RecordExecutionsResponse(
            accepted_count=results.count("accepted"),
            results=[pb.RECORD_RESULT_ACCEPTED] * len(results),
        ).SerializeToString()
        t5 = clock()
        if refused or len(valid) != 500:
            raise RuntimeError(f"{len(refused)} refused in a {kind} batch")
        for stage, seconds in zip(
            STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True
        ):
            spent[stage] += seconds
    n = batches * 500
    return {stage: seconds / n * 1e6 for stage, seconds in spent.items()}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print("| stage | routine (µs per execution) | rich (µs per execution) |")
    print("|---|---|---|")
    best: dict[str, dict[str, float]] = {}
    for kind in ("routine", "rich"):
        rounds = [measure(kind, args.batches) for _ in range(args.repeat)]
        best[kind] = {s: min(r[s] for r in rounds) for s in STAGES}
    for stage in STAGES:
        print(f"| {stage} | {best['routine'][stage]:.2f} | {best['rich'][stage]:.2f} |")
    total = {k: sum(v.values()) - v["id hash"] for k, v in best.items()}
    print(
        f"| **total** (id hash is inside record) | {total['routine']:.2f} | {total['rich']:.2f} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
