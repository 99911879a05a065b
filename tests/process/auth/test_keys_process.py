"""Keys in the real `cugar-metrics serve` process: reload on SIGHUP, the warning without auth."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import grpc
import pytest

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar.metrics.v1 import metrics_service_pb2_grpc as pb_grpc
from tests.conftest import pb_execution
from tests.server.auth.helpers import bearer, make_keys
from tests.server.auth.test_keys import eventually
from tests.support.serverproc import launch

pytestmark = pytest.mark.e2e


def test_sighup_reloads_the_keys_file_of_a_running_process(tmp_path: Path) -> None:
    """A real `cugar-metrics serve`: polling is slowed to an hour, so only SIGHUP can make a
    new key work; the server keeps serving and drains to exit code 0."""
    keys = make_keys(tmp_path)
    proc = launch(
        tmp_path,
        "--auth-keys-file",
        str(keys.path),
        "--auth-reload-interval",
        "1h",
        name="sighup",
    )
    try:
        with grpc.insecure_channel(proc.target) as channel:
            stub = pb_grpc.MetricsServiceStub(channel)
            new = keys.add("new-agent", "recorder")

            def record() -> None:
                stub.RecordExecution(
                    pb.RecordExecutionRequest(execution=pb_execution(f"h-{time.monotonic()}")),
                    metadata=bearer(new),
                    timeout=5,
                )

            with pytest.raises(grpc.RpcError) as caught:
                record()
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            proc.proc.send_signal(signal.SIGHUP)
            eventually(record)
        assert "keys file" in proc.output() and "reloaded: 5 keys (4 active, 1 revoked)" in (
            proc.output()
        )
    finally:
        assert proc.stop() == 0


def test_a_server_without_auth_warns_at_start_up(tmp_path: Path) -> None:
    proc = launch(tmp_path, name="open")
    try:
        out = proc.output()
    finally:
        assert proc.stop() == 0
    assert "WARNING cugar_metrics.auth: authentication is off: anyone who can reach" in out
