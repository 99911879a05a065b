"""A load-client process for RecordExecutions: batches of unique executions, several in flight.

Driven through stdin/stdout by the benchmark: it prints `ready` once connected, then for each
`go N` line sends N batches and prints one JSON line with what the server answered; `quit`
ends it. Ids are `<prefix><sequence>` and the sequence carries on across `go` commands, so
every execution of a run is unique.

    python -m server.batch_client --target 127.0.0.1:50051 --prefix w0- (cwd: bench/)
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from typing import Any

import grpc

from cugar.metrics.v1 import metrics_service_pb2 as pb
from server.workload import (
    BatchEncoder,
    cap_filling_templates,
    check_batch,
    model_templates,
    realistic_templates,
    rich_templates,
    routine_templates,
)

METHOD = "/cugar.metrics.v1.MetricsService/RecordExecutions"


def _run(
    call: Any, encoder: BatchEncoder, batches: int, size: int, inflight: int
) -> dict[str, Any]:
    t0, c0 = time.perf_counter(), time.process_time()
    pending: collections.deque[Any] = collections.deque()
    totals = {"accepted": 0, "duplicate": 0, "rejected": 0, "errors": 0}
    error = ""

    def settle(future: Any) -> None:
        nonlocal error
        try:
            r = future.result()
        except grpc.RpcError as e:
            totals["errors"] += 1
            error = f"{e.code().name}: {e.details()}"
            return
        totals["accepted"] += r.accepted_count
        totals["duplicate"] += r.duplicate_count
        totals["rejected"] += r.rejected_count

    for _ in range(batches):
        if len(pending) >= inflight:
            settle(pending.popleft())
        pending.append(call.future(encoder.batch(size), timeout=120))
    while pending:
        settle(pending.popleft())
    return {
        "batches": batches,
        "executions": batches * size,
        **totals,
        "error": error,
        "elapsed_s": time.perf_counter() - t0,
        "cpu_s": time.process_time() - c0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", required=True)
    parser.add_argument("--prefix", required=True, help="execution_id prefix of this client")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--inflight", type=int, default=4)
    parser.add_argument(
        "--templates",
        choices=("realistic", "caps", "routine", "rich", "models"),
        default="realistic",
    )
    args = parser.parse_args()

    templates = {
        "realistic": realistic_templates,
        "caps": cap_filling_templates,
        "routine": routine_templates,
        "rich": rich_templates,
        "models": model_templates,
    }[args.templates]()
    encoder = BatchEncoder(templates, args.prefix)
    probe = BatchEncoder(templates, args.prefix)
    check_batch(probe.batch(args.batch_size), args.batch_size, args.prefix)

    channel = grpc.insecure_channel(
        args.target,
        options=[
            ("grpc.max_send_message_length", 16 * 1024 * 1024),
            ("grpc.max_receive_message_length", 16 * 1024 * 1024),
        ],
    )
    grpc.channel_ready_future(channel).result(timeout=30)
    call = channel.unary_unary(
        METHOD,
        request_serializer=None,
        response_deserializer=pb.RecordExecutionsResponse.FromString,
    )
    print("ready", flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        if words[0] == "go":
            result = _run(call, encoder, int(words[1]), args.batch_size, args.inflight)
            print(json.dumps(result), flush=True)
    channel.close()


if __name__ == "__main__":
    main()
