"""SIGHUP means "reload", with or without authentication: it never ends the process."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar.metrics.v1 import metrics_service_pb2_grpc as pb_grpc
from tests.conftest import pb_execution
from tests.support.serverproc import launch


def test_sighup_without_auth_keeps_serving_and_drains_normally(tmp_path: Path) -> None:
    p = launch(tmp_path, "--state-file", str(tmp_path / "state"), name="hup")
    try:
        with grpc.insecure_channel(p.target) as channel:
            stub = pb_grpc.MetricsServiceStub(channel)
            stub.RecordExecution(
                pb.RecordExecutionRequest(execution=pb_execution("before-hup")), timeout=5
            )
            p.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while "SIGHUP: nothing to reload" not in p.output():
                assert p.proc.poll() is None, f"SIGHUP ended the process: {p.output()}"
                assert time.monotonic() < deadline, p.output()
                time.sleep(0.05)
            assert p.proc.poll() is None
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            stub.RecordExecution(
                pb.RecordExecutionRequest(execution=pb_execution("after-hup")), timeout=5
            )
    finally:
        assert p.stop() == 0
    assert "final counts: accepted=2 duplicate=0 rejected=0" in p.output()
    assert "state saved to" in p.output()
