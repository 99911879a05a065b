"""Load at the cardinality caps for a real server process, with its RSS sampled over time.

Every batch of 500 executions touches every capped series of the default caps: 50 profiles x
{success, failure}, 50 profiles x 4 approval decisions, the 200 domain/tool pairs and the 100
error types, with durations and waits spread log-uniformly from 1 us to 1 h, so every series
changes in every 10-s tick and the sketches spread as wide as they can.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from google.protobuf import duration_pb2

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar.metrics.v1 import metrics_service_pb2_grpc as pb_grpc

DECISIONS = (
    pb.APPROVAL_DECISION_APPROVED,
    pb.APPROVAL_DECISION_DENIED,
    pb.APPROVAL_DECISION_TIMEOUT,
    pb.APPROVAL_DECISION_CANCELLED,
)


def duration(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(round(seconds * 1e9))
    return d


def _seconds(rng: random.Random) -> float:
    """Log-uniform from 1 us to 1 h."""
    return math.exp(rng.uniform(math.log(1e-6), math.log(3600.0)))


def _spread(rng: random.Random) -> duration_pb2.Duration:
    return duration(_seconds(rng))


def _model_call(rng: random.Random, k: int) -> pb.ModelCall:
    """A chat call of one of 50 provider/model pairs (the `model` cap)."""
    seconds = _seconds(rng)
    return pb.ModelCall(
        provider=f"provider_{k % 5}",
        model=f"model_{k % 50:02d}",
        operation=pb.MODEL_OPERATION_CHAT,
        status=pb.MODEL_CALL_STATUS_SUCCESS,
        duration=duration(seconds),
        time_to_first_token=duration(seconds * rng.random()),
        input_tokens=rng.randint(1, 4000),
        output_tokens=rng.randint(1, 1000),
        cost=rng.uniform(0, 0.05),
    )


def cap_batch(
    rng: random.Random, prefix: str, seq: int, size: int = 500, *, models: bool = False
) -> pb.RecordExecutionsRequest:
    """`size` executions (400 or more cover every capped series) with fresh ids; with
    `models`, each with one model call (50 or more cover the `model` cap)."""
    out = []
    for i in range(size):
        n = seq + i
        failed = (i // 200) % 2 == 1
        pair = (i + seq // size) % 200
        out.append(
            pb.Execution(
                execution_id=f"{prefix}-{n}",
                profile=f"profile_{i % 50:02d}",
                outcome=pb.OUTCOME_FAILURE if failed else pb.OUTCOME_SUCCESS,
                error_type=f"error_{(i + seq // size) % 100:03d}" if failed else "",
                duration=_spread(rng),
                steps=rng.randint(1, 300),
                budget=pb.Budget(spent=rng.uniform(0, 20), limit=10),
                approvals=[
                    pb.Approval(
                        decision=DECISIONS[(i // 50) % 4],
                        wait=_spread(rng),
                        operation=pb.APPROVAL_OPERATION_EXECUTE,
                    )
                ],
                tool_calls=[
                    pb.ToolCall(
                        tool=f"tool_{pair % 10}",
                        domain=f"domain_{pair // 10:02d}",
                        status=pb.TOOL_CALL_STATUS_SUCCESS,
                        duration=_spread(rng),
                    )
                ],
                model_calls=[_model_call(rng, i + seq // size)] if models else [],
            )
        )
    return pb.RecordExecutionsRequest(executions=out)


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise LookupError("VmRSS")


@dataclass
class Sample:
    seconds: float
    rss: int
    sent: int


def drive(
    target: str,
    pid: int,
    seconds: float,
    *,
    rate: float = 1000.0,
    every: float = 10.0,
    on_sample: Callable[[Sample], None] | None = None,
    seed: int = 1,
) -> list[Sample]:
    """Sends batches of 500 at about `rate` executions/s for `seconds`; samples the server's
    RSS every `every` seconds (first at 0). Every execution must be accepted."""
    rng = random.Random(seed)
    samples: list[Sample] = []
    sent = 0
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.MetricsServiceStub(channel)
        start = time.monotonic()
        next_sample = start
        while True:
            now = time.monotonic()
            if now >= next_sample:
                s = Sample(round(now - start, 1), rss_bytes(pid), sent)
                samples.append(s)
                if on_sample:
                    on_sample(s)
                next_sample += every
            if now - start >= seconds:
                return samples
            request = cap_batch(rng, f"w{seed}", sent)
            response = stub.RecordExecutions(request, timeout=30)
            assert response.accepted_count == len(request.executions), response.rejected_executions[
                :1
            ]
            sent += len(request.executions)
            now = time.monotonic()
            ahead = start + sent / rate - now
            if ahead > 0:
                time.sleep(min(ahead, max(0.001, next_sample - now)))
