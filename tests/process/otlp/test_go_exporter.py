"""An agent instrumented with the OpenTelemetry Go SDK (examples/otlp-go: its own OTLP gRPC
exporter and batch processor, no cugar-metrics client) is counted exactly, so the receiver
works beyond Python's exporter."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar.metrics.v1 import metrics_service_pb2_grpc as pb_grpc
from tests.support.serverproc import ROOT, ServerProcess, launch

PROGRAM = ROOT / "examples" / "otlp-go"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServerProcess, int]]:
    process = launch(tmp_path, "--otlp-port", "0", name="otlp-go")
    otlp_port = json.loads((tmp_path / "otlp-go.ready.json").read_text())["otlp_port"]
    try:
        yield process, otlp_port
    finally:
        assert process.stop() == 0, process.output()


def test_the_go_sdk_exporter_is_counted_exactly(
    served: tuple[ServerProcess, int], tmp_path: Path
) -> None:
    server, otlp_port = served
    binary = tmp_path / "otlp-go"
    build = subprocess.run(
        ["go", "build", "-o", str(binary), "."],
        cwd=PROGRAM,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    run = subprocess.run(
        [str(binary), "-endpoint", f"127.0.0.1:{otlp_port}", "-runs", "4"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    with grpc.insecure_channel(server.target) as channel:
        d = pb_grpc.MetricsServiceStub(channel).GetDashboard(pb.GetDashboardRequest(), timeout=10)
    assert [(p.profile, p.total) for p in d.profiles] == [("go_agent", 4)]
    assert [(t.domain, t.tool, t.calls, t.errors) for t in d.tools] == [
        ("territory", "search_accounts", 4, 1)
    ]
    assert [(m.provider, m.model, m.calls, m.input_tokens, m.output_tokens) for m in d.models] == [
        ("openai", "gpt-4o", 4, 1600, 200)
    ]
