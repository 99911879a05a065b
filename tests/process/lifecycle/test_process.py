"""The real `cugar-metrics serve` process with real grpcurl, grpc_health_probe and promtool."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar.metrics.v1 import metrics_service_pb2_grpc as pb_grpc
from tests.conftest import pb_execution
from tests.support.serverproc import CLI as CLI_PATH
from tests.support.serverproc import ServerProcess, launch, tool

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[3]
CLI = str(CLI_PATH)
SERVICE = "cugar.metrics.v1.MetricsService"


def wait_for_log(p: ServerProcess, line: str, timeout: float = 60) -> None:
    """Waits until the server has logged `line` (the timeout only bounds the wait)."""
    deadline = time.monotonic() + timeout
    while line not in p.output():
        assert time.monotonic() < deadline, p.output()
        time.sleep(0.02)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServerProcess]:
    p = launch(tmp_path, name="e2e")
    try:
        yield p
    finally:
        p.stop(timeout=30)


def run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if check:
        assert result.returncode == 0, f"{cmd}: {result.stdout}{result.stderr}"
    return result


def test_startup_log_says_where_it_listens(served: ServerProcess) -> None:
    out = served.output()
    assert f"gRPC 127.0.0.1:{served.grpc_port} (plaintext, reflection on)" in out
    assert f"metrics http://127.0.0.1:{served.metrics_port}/metrics" in out


def test_grpcurl_lists_describes_and_invokes_through_reflection(served: ServerProcess) -> None:
    grpcurl = tool("grpcurl")
    listed = run(grpcurl, "-plaintext", served.target, "list").stdout.split()
    assert listed == [
        SERVICE,
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "opentelemetry.proto.collector.trace.v1.TraceService",
    ]
    described = run(grpcurl, "-plaintext", served.target, "describe", SERVICE).stdout
    for rpc in ("RecordExecution", "RecordExecutions", "GetDashboard"):
        assert f"rpc {rpc}" in described
    execution = json.dumps(
        {
            "execution": {
                "execution_id": "grpcurl-1",
                "profile": "demo",
                "outcome": "OUTCOME_SUCCESS",
                "duration": "2.5s",
                "tool_calls": [
                    {
                        "tool": "search_accounts",
                        "domain": "territory",
                        "status": "TOOL_CALL_STATUS_SUCCESS",
                        "duration": "0.3s",
                    }
                ],
            }
        }
    )
    recorded = run(
        grpcurl, "-plaintext", "-d", execution, served.target, f"{SERVICE}/RecordExecution"
    ).stdout
    assert json.loads(recorded) == {"result": "RECORD_RESULT_ACCEPTED"}
    dashboard = json.loads(
        run(
            grpcurl,
            "-plaintext",
            "-d",
            '{"window": "300s"}',
            served.target,
            f"{SERVICE}/GetDashboard",
        ).stdout
    )
    assert dashboard["executions"] == {"total": "1", "succeeded": "1"}
    assert dashboard["goldenSignals"]["latencyMean"] == "2.500s"
    assert dashboard["replica"] == "e2e"
    bad = run(
        grpcurl,
        "-plaintext",
        "-d",
        json.dumps(
            {
                "execution": {
                    "execution_id": "grpcurl-2",
                    "profile": "demo",
                    "outcome": "OUTCOME_SUCCESS",
                    "duration": "1700000000s",
                }
            }
        ),
        served.target,
        f"{SERVICE}/RecordExecution",
        check=False,
    )
    assert bad.returncode != 0
    assert "Code: InvalidArgument" in bad.stderr
    assert '"field": "execution.duration"' in bad.stderr


def test_reflection_can_be_turned_off(tmp_path: Path) -> None:
    p = launch(tmp_path, "--no-reflection", name="e2e")
    try:
        result = run(tool("grpcurl"), "-plaintext", p.target, "list", check=False)
        assert result.returncode != 0
        assert "does not support the reflection API" in result.stderr
    finally:
        assert p.stop(timeout=30) == 0


def test_grpc_health_probe_sees_serving_then_not_serving_on_sigterm(tmp_path: Path) -> None:
    probe = tool("grpc_health_probe")
    # The delay keeps the port open and NOT_SERVING for the probe after SIGTERM.
    p = launch(tmp_path, "--shutdown-delay", "10s", name="e2e")
    for service in ("", SERVICE):
        result = run(probe, f"-addr={p.target}", f"-service={service}")
        assert "SERVING" in result.stdout + result.stderr
    p.proc.send_signal(signal.SIGTERM)
    wait_for_log(p, "SIGTERM received: NOT_SERVING")
    result = run(probe, f"-addr={p.target}", check=False)
    assert result.returncode == 4, result.stdout + result.stderr  # 4: NOT_SERVING
    assert p.proc.wait(timeout=30) == 0


def test_promtool_accepts_the_exposition(served: ServerProcess) -> None:
    with grpc.insecure_channel(served.target) as channel:
        pb_grpc.MetricsServiceStub(channel).RecordExecution(
            pb.RecordExecutionRequest(execution=pb_execution("prom-1"))
        )
    with urllib.request.urlopen(f"http://127.0.0.1:{served.metrics_port}/metrics") as r:
        text = r.read()
    result = subprocess.run(
        [tool("promtool"), "check", "metrics"], input=text, capture_output=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == b""  # no lint complaint at all


def test_sigterm_during_load_loses_no_acknowledged_execution(tmp_path: Path) -> None:
    p = launch(tmp_path, "--shutdown-grace", "5s", name="e2e")
    acked = [0] * 4
    stop = threading.Event()

    def agent(n: int) -> None:
        with grpc.insecure_channel(p.target) as channel:
            stub = pb_grpc.MetricsServiceStub(channel)
            i = 0
            while not stop.is_set():
                try:
                    stub.RecordExecution(
                        pb.RecordExecutionRequest(execution=pb_execution(f"load-{n}-{i}")),
                        timeout=5,
                    )
                    acked[n] += 1
                except grpc.RpcError:
                    return  # the server stopped accepting: this agent is done
                i += 1

    threads = [threading.Thread(target=agent, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60  # bounds the wait for the load, not its speed
    while sum(acked) < 100 or min(acked) == 0:
        assert time.monotonic() < deadline, acked
        time.sleep(0.01)
    p.proc.send_signal(signal.SIGTERM)
    assert p.proc.wait(timeout=30) == 0
    stop.set()
    for t in threads:
        t.join(timeout=10)
    out = p.output()
    final = [line for line in out.splitlines() if "final counts:" in line]
    assert final, out
    accepted = int(final[-1].split("accepted=")[1].split()[0])
    assert sum(acked) >= 100  # the load ran through the drain
    # Every acknowledged execution is counted; an RPC whose reply was lost when the
    # connection closed may be counted without the client having seen it (at most one per
    # agent).
    assert sum(acked) <= accepted <= sum(acked) + len(threads)


def test_port_in_use_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [CLI, "serve", "--no-auth", "--grpc-port", str(port), "--metrics-port", "0"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(f"cugar-metrics: error: cannot listen for gRPC on 127.0.0.1:{port}")
    )
    assert "--grpc-port" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--grpc-port", "http"], "--grpc-port: 'http' is not a whole number"),
        (["--shutdown-grace", "soon"], "--shutdown-grace: 'soon' is not a duration"),
        (["--metrics-port", "70000"], "--metrics-port: must be between 0 and 65535 (got 70000)"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_flags_are_one_line_errors_naming_the_flag(args: list[str], message: str) -> None:
    result = subprocess.run([CLI, "serve", *args], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr


def test_check_config_reads_env_and_validates() -> None:
    env = {**os.environ, "CUGAR_METRICS_GRPC_PORT": "6000", "CUGAR_METRICS_MAX_TOOLS": "42"}
    result = subprocess.run(
        [CLI, "serve", "--no-auth", "--check-config", "--metrics-port", "6001"],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "grpc_port = 6000" in result.stdout
    assert "metrics_port = 6001" in result.stdout
    assert "max_tools = 42" in result.stdout
    assert result.stdout.strip().endswith("configuration is valid")


def test_authentication_must_be_configured_or_turned_off_to_leave_loopback(
    tmp_path: Path,
) -> None:
    """With neither a keys file nor --no-auth the server refuses a non-loopback address,
    naming both (protected mode; tests/process/auth/test_protected_mode.py has the rest)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUGAR_METRICS_")}
    result = subprocess.run(
        [CLI, "serve", "--host", "0.0.0.0", "--grpc-port", "0", "--metrics-port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("cugar-metrics: error: --host 0.0.0.0 would serve beyond this machine")
    assert "--auth-keys-file" in line and "--no-auth" in line
    # The explicit choice, by flag or by environment, starts it (and it says so in its log).
    p = launch(tmp_path, name="no-auth")  # passes --no-auth
    try:
        assert "WARNING cugar_metrics.auth: authentication is off" in p.output()
    finally:
        assert p.stop() == 0
    checked = subprocess.run(
        [CLI, "serve", "--check-config", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**env, "CUGAR_METRICS_NO_AUTH": "true"},
    )
    assert checked.returncode == 0, checked.stderr


def test_sigterm_right_after_the_ready_file_still_drains_to_exit_0(tmp_path: Path) -> None:
    """The signal handlers are in place before the server says it is ready."""
    for attempt in range(5):
        p = launch(tmp_path, name=f"quick-{attempt}")
        assert p.stop() == 0, p.output()
