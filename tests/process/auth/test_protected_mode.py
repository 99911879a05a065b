"""Protected mode: without an authentication choice the server serves on loopback only,
with a WARNING, and refuses any other address naming both choices."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import grpc
import pytest

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar.metrics.v1 import metrics_service_pb2_grpc as pb_grpc
from tests.conftest import pb_execution
from tests.support.serverproc import CLI, serve_command, stop_process, wait_for_ready

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("CUGAR_METRICS_")}


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), "serve", "--grpc-port", "0", "--metrics-port", "0", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**CLEAN_ENV, **(env or {})},
        check=False,
    )


def test_serve_without_auth_flags_serves_on_loopback_with_a_warning(tmp_path: Path) -> None:
    ready, log = tmp_path / "ready.json", tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            serve_command(ready),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=CLEAN_ENV,
        )
    try:
        port = wait_for_ready(proc, ready, log, 30)["grpc_port"]
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = pb_grpc.MetricsServiceStub(channel).RecordExecution(
                pb.RecordExecutionRequest(execution=pb_execution("protected-1")), timeout=5
            )
        assert reply.result == pb.RECORD_RESULT_ACCEPTED
    finally:
        assert stop_process(proc) == 0
    out = log.read_text()
    assert (
        "WARNING cugar_metrics: protected mode: neither --auth-keys-file nor --no-auth, so the "
        "server serves on loopback only (127.0.0.1)"
    ) in out
    assert "gRPC 127.0.0.1:" in out


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["--host", "0.0.0.0"], {}, "--host 0.0.0.0"),
        (["--host", "::"], {}, "--host ::"),
        (["--metrics-host", "0.0.0.0"], {}, "--metrics-host 0.0.0.0"),
        ([], {"CUGAR_METRICS_HOST": "0.0.0.0"}, "--host 0.0.0.0"),
    ],
)
def test_a_non_loopback_address_without_a_choice_is_refused_naming_both_flags(
    args: list[str], env: dict[str, str], named: str
) -> None:
    result = _serve(*args, env=env)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"cugar-metrics: error: {named} would serve beyond this machine")
    assert "--auth-keys-file FILE" in line and "--no-auth" in line


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--host", "0.0.0.0", "--no-auth"], {}),
        (["--host", "0.0.0.0"], {"CUGAR_METRICS_NO_AUTH": "true"}),
        (["--host", "localhost"], {}),
        (["--host", "::1", "--metrics-host", "127.0.0.2"], {}),
    ],
)
def test_an_explicit_choice_or_a_loopback_address_is_accepted(
    args: list[str], env: dict[str, str]
) -> None:
    result = _serve("--check-config", *args, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("configuration is valid")
