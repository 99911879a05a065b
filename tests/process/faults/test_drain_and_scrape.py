"""Smaller faults of a real `cugar-metrics serve`: a connection that never sends its HTTP/2
preface no longer holds SIGTERM for the whole grace, and `/metrics?name[]=...` returns the
named families as prometheus_client's filter does."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import grpc
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar.metrics.v1 import metrics_service_pb2_grpc as pb_grpc
from tests.conftest import pb_execution
from tests.process.faults.helpers import record, scrape, value
from tests.support.serverproc import launch


def test_a_silent_connection_does_not_hold_the_drain_and_calls_in_flight_finish(
    tmp_path: Path,
) -> None:
    process = launch(tmp_path, "--shutdown-grace", "10m", name="silent")
    silent = socket.create_connection(("127.0.0.1", process.grpc_port))  # sends nothing
    replies: list[pb.RecordExecutionsResponse] = []
    try:
        with grpc.insecure_channel(process.target) as channel:
            stub = pb_grpc.MetricsServiceStub(channel)
            template = pb_execution("t")
            for i in range(300):
                template.tool_calls.add().CopyFrom(template.tool_calls[i % 2])
            batch = []
            for i in range(1000):
                e = pb.Execution()
                e.CopyFrom(template)
                e.execution_id = f"in-flight-{i}"
                batch.append(e)
            sender = threading.Thread(
                target=lambda: replies.append(
                    stub.RecordExecutions(pb.RecordExecutionsRequest(executions=batch), timeout=600)
                )
            )
            sender.start()
            started = (
                'grpc_server_started_total{grpc_method="RecordExecutions",'
                'grpc_service="cugar.metrics.v1.MetricsService",grpc_type="unary"}'
            )
            while value(scrape(process), started) < 1:
                time.sleep(0.01)
            process.proc.terminate()  # SIGTERM while the batch is being recorded
            sender.join()
        code = process.proc.wait(timeout=600)
    finally:
        silent.close()
        process.stop()
    assert code == 0
    assert replies[0].accepted_count == 1000
    log = process.output()
    assert "no call in flight: closing the remaining connections" in log
    assert "final counts: accepted=1000 duplicate=0 rejected=0" in log


def _families(text: str) -> dict[str, set[str]]:
    return {f.name: {s.name for s in f.samples} for f in text_string_to_metric_families(text)}


def test_metrics_name_filter_matches_prometheus_client(tmp_path: Path) -> None:
    # prometheus_client's own filter, on a registry of its own: samples whose name is listed.
    reference = CollectorRegistry()
    Counter("demo", "d", registry=reference).inc()
    only = generate_latest(reference.restricted_registry(["demo_total"])).decode()
    assert _families(only) == {"demo": {"demo_total"}}
    assert generate_latest(reference.restricted_registry(["unknown"])) == b""

    process = launch(tmp_path, name="scrape")
    try:
        with grpc.insecure_channel(process.target) as channel:
            assert record(channel, "one") == pb.RECORD_RESULT_ACCEPTED
        full = scrape(process)
        one = scrape(process, "?name[]=cugar_ingest_executions_total")
        assert _families(one) == {"cugar_ingest_executions": {"cugar_ingest_executions_total"}}
        assert value(one, 'cugar_ingest_executions_total{result="accepted"}') == 1
        two = scrape(
            process,
            "?name[]=cugar_executions_total&name[]=grpc_server_handling_seconds_count",
        )
        assert _families(two) == {
            "cugar_executions": {"cugar_executions_total"},
            "grpc_server_handling_seconds": {"grpc_server_handling_seconds_count"},
        }
        assert scrape(process, "?name[]=no_such_metric") == ""  # as prometheus_client
        assert len(_families(full)) > 20
    finally:
        assert process.stop() == 0
