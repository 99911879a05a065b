"""The image's start command and HEALTHCHECK, run outside a container.

No Docker engine runs in CI, so this reads the runtime stage of the Dockerfile and runs
its ENTRYPOINT + CMD with its ENV (ports moved to free ones), then its HEALTHCHECK
command, then sends SIGTERM the way `docker stop` does: the server must answer the
health check and exit 0.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.monitoring.promstack import ROOT, wait_for
from tests.support.serverproc import stop_process

pytestmark = pytest.mark.e2e


def runtime_stage() -> dict[str, object]:
    """Instructions of the Dockerfile's last stage (continuation lines joined)."""
    text = (ROOT / "Dockerfile").read_text()
    lines = re.sub(r"\\\n\s*", " ", text).splitlines()
    stage: list[str] = []
    for line in lines:
        if line.startswith("FROM "):
            stage = [line]
        elif line and not line.startswith("#"):
            stage.append(line)
    out: dict[str, object] = {"FROM": stage[0].split()[1], "ENV": {}}
    for line in stage[1:]:
        op, _, rest = line.partition(" ")
        if op == "ENV":
            for token in shlex.split(rest):
                key, _, value = token.partition("=")
                out["ENV"][key] = value  # type: ignore[index]
        elif op in ("ENTRYPOINT", "CMD", "USER", "EXPOSE", "STOPSIGNAL"):
            out[op] = json.loads(rest) if rest.startswith("[") else rest
        elif op == "HEALTHCHECK":
            out[op] = json.loads(rest[rest.index(" CMD ") + 5 :])
    return out


def test_runtime_stage_is_pinned_non_root_and_exec_form() -> None:
    """Pinned slim base, numeric non-root user, both ports exposed, exec-form start command."""
    stage = runtime_stage()
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", str(stage["FROM"]))
    assert stage["USER"] == "10001:10001"
    assert stage["EXPOSE"] == "50051 9464"
    assert stage["STOPSIGNAL"] == "SIGTERM"
    assert stage["ENTRYPOINT"] == ["cugar-metrics"]
    assert stage["CMD"] == ["serve", "--host", "0.0.0.0"]
    assert stage["HEALTHCHECK"][:2] == ["/bin/sh", "-c"]  # type: ignore[index]
    assert "-service=cugar.metrics.v1.MetricsService" in stage["HEALTHCHECK"][2]  # type: ignore[index]


def test_start_command_serves_passes_its_healthcheck_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    """ENTRYPOINT + CMD start the server; the HEALTHCHECK passes; SIGTERM drains to exit 0."""
    stage = runtime_stage()
    image_env: dict[str, str] = dict(stage["ENV"])  # type: ignore[arg-type]
    path = image_env.pop("PATH").replace("/opt/venv/bin", str(ROOT / ".venv" / "bin"))
    path = path.replace("$PATH", f"{ROOT / '.tools' / 'bin'}:{os.environ['PATH']}")
    ready = tmp_path / "ready.json"
    env = {
        **os.environ,
        **image_env,
        "PATH": path,
        # Free ports instead of the image's 50051/9464, reported in the ready file.
        "CUGAR_METRICS_GRPC_PORT": "0",
        "CUGAR_METRICS_METRICS_PORT": "0",
        "CUGAR_METRICS_READY_FILE": str(ready),
        # The image keeps its state in /var/lib/cugar-metrics; here, in the test's directory.
        "CUGAR_METRICS_STATE_FILE": str(tmp_path / "state"),
        # The image makes no authentication choice: `docker run` passes one, as compose and
        # the Kubernetes base do.
        "CUGAR_METRICS_NO_AUTH": "true",
    }
    assert image_env["CUGAR_METRICS_STATE_FILE"] == "/var/lib/cugar-metrics/state"
    argv = [*stage["ENTRYPOINT"], *stage["CMD"]]  # type: ignore[misc]
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        info = wait_for(
            "the ready file",
            lambda: ready.exists() and ready.read_text() and json.loads(ready.read_text()),
            timeout=30,
        )
        health_env = {**env, "CUGAR_METRICS_GRPC_PORT": str(info["grpc_port"])}
        health = subprocess.run(
            stage["HEALTHCHECK"],
            env=health_env,  # type: ignore[call-overload]
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert health.returncode == 0, health.stdout + health.stderr
        assert "status: SERVING" in health.stdout + health.stderr
        url = f"http://127.0.0.1:{info['metrics_port']}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            assert resp.status == 200
            assert b"cugar_build_info{" in resp.read()

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()
        assert (tmp_path / "state").stat().st_size > 0  # persistence is on in the image
        # It drained with the image's grace (10 s), which is inside compose's 20 s.
        output = log.read_text()
        assert "then draining in-flight RPCs (grace 10s)" in output, output
        assert re.search(r"drained in [0-9.]+s; final counts: accepted=0 ", output), output
        after = subprocess.run(
            stage["HEALTHCHECK"],
            env=health_env,  # type: ignore[call-overload]
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert after.returncode != 0, "the health check must fail once the server is gone"
    finally:
        stop_process(proc)
