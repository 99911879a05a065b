"""Callers without a key cannot starve probes or agents (a real `cugar-metrics serve`).

The attack: many `grpc.health.v1.Health/Watch` and reflection streams, opened without a key
on one connection and then on a second, plus garbage bodies sent to MetricsService without a
key. Health and reflection stay open by design; their streams are capped per connection and
in total, apart from `--max-concurrent-rpcs`, which counts MetricsService calls only.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from cugar.metrics.v1 import metrics_service_pb2 as pb
from tests.process.faults.helpers import accepted, raw_call, record, scrape, value
from tests.server.auth.helpers import make_keys
from tests.support.serverproc import launch

WATCHES = 1000
PER_CONNECTION = 3
WATCH_TOTAL = 5
REFLECTION_TOTAL = 4


def _first_statuses(calls: list[Iterator[object]]) -> dict[str, int]:
    """How many of the streams answered a first message, and how many were refused, by code."""
    codes: dict[str, int] = {}
    for call in calls:
        try:
            next(call)
            name = "OPEN"
        except grpc.RpcError as e:
            name = e.code().name
        codes[name] = codes.get(name, 0) + 1
    return codes


def test_watch_and_reflection_floods_without_a_key_starve_nobody(tmp_path: Path) -> None:
    keys = make_keys(tmp_path)
    key = keys.by_name["rec-agent"]
    process = launch(
        tmp_path,
        "--auth-keys-file",
        str(keys.path),
        "--max-concurrent-rpcs",
        "20",
        "--max-watch-streams",
        str(WATCH_TOTAL),
        "--max-reflection-streams",
        str(REFLECTION_TOTAL),
        "--max-streams-per-connection",
        str(PER_CONNECTION),
        name="starve",
    )
    release = threading.Event()
    # Own subchannel pools: two TCP connections, not one shared.
    attackers = [
        grpc.insecure_channel(process.target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(2)
    ]
    try:
        watches: list[list[Iterator[object]]] = []
        reflections: list[list[Iterator[object]]] = []
        for channel in attackers:
            health = health_pb2_grpc.HealthStub(channel)
            watches.append([health.Watch(health_pb2.HealthCheckRequest()) for _ in range(WATCHES)])

            def ask() -> Iterator[reflection_pb2.ServerReflectionRequest]:
                yield reflection_pb2.ServerReflectionRequest(list_services="")
                release.wait()

            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            reflections.append([stub.ServerReflectionInfo(ask()) for _ in range(10)])
        # Per connection at most PER_CONNECTION streams of each kind; in total at most the
        # kind's cap. Every other stream is refused at once with RESOURCE_EXHAUSTED, counted
        # by the server; a few may be reset by the transport before they reach it (CANCELLED).
        statuses = [_first_statuses(calls) for calls in (*watches, *reflections)]
        assert [s.get("OPEN", 0) for s in statuses] == [
            PER_CONNECTION,
            WATCH_TOTAL - PER_CONNECTION,
            PER_CONNECTION,
            REFLECTION_TOTAL - PER_CONNECTION,
        ]
        assert all(set(s) <= {"OPEN", "RESOURCE_EXHAUSTED", "CANCELLED"} for s in statuses)
        exhausted = [s.get("RESOURCE_EXHAUSTED", 0) for s in statuses]
        refused = scrape(process)
        assert value(refused, 'cugar_rpc_refusals_total{reason="watch_streams"}') == (
            exhausted[0] + exhausted[1]
        )
        assert value(refused, 'cugar_rpc_refusals_total{reason="reflection_streams"}') == (
            exhausted[2] + exhausted[3]
        )
        assert exhausted[0] + exhausted[1] > WATCHES

        # While they stay open, the probe and the agents are served, every time.
        with grpc.insecure_channel(process.target) as channel:
            check = health_pb2_grpc.HealthStub(channel).Check
            for _ in range(50):
                status = check(health_pb2.HealthCheckRequest(), timeout=10).status
                assert status == health_pb2.HealthCheckResponse.SERVING
            results = [record(channel, f"starve-{i}", key) for i in range(50)]
            assert results == [pb.RECORD_RESULT_ACCEPTED] * 50

            # Garbage from a caller without a key is refused before it is decoded.
            garbage = bytes(range(256)) * 64
            codes = [raw_call(channel, "RecordExecutions", garbage) for _ in range(21)]
            assert {c.code() for c in codes if isinstance(c, grpc.RpcError)} == {
                grpc.StatusCode.UNAUTHENTICATED
            }
            assert len([c for c in codes if isinstance(c, grpc.RpcError)]) == 21
        text = scrape(process)
        assert value(text, 'cugar_auth_failures_total{reason="missing_credentials"}') == 21
        assert value(text, 'cugar_ingest_executions_total{result="accepted"}') == 50
        assert accepted(process) == 50
    finally:
        release.set()
        for channel in attackers:
            channel.close()
        assert process.stop() == 0
    log = process.output()
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
