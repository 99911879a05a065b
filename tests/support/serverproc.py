"""A real `cugar-metrics serve` process on free ports, for tests that need the whole program.

The process binds port 0 for gRPC and metrics and reports the ports in its ready file; it is
stopped with SIGTERM, which must drain it to exit code 0.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / ".venv" / "bin" / "cugar-metrics"


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    grpc_port: int
    metrics_port: int
    log: Path
    host: str = "127.0.0.1"

    @property
    def target(self) -> str:
        """HOST:PORT of the gRPC port."""
        return f"{self.host}:{self.grpc_port}"

    @property
    def metrics_target(self) -> str:
        """HOST:PORT of the metrics port, as Prometheus names a target."""
        return f"{self.host}:{self.metrics_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.metrics_target}/metrics"

    def output(self) -> str:
        """What the server logged so far."""
        return self.log.read_text()

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM, wait for the drain, return the exit code (killed after `timeout`)."""
        return stop_process(self.proc, timeout)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 20) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def serve_command(ready: Path, *args: str, grpc_port: int = 0) -> list[str]:
    """`cugar-metrics serve` on `grpc_port` (0: a free one) and a free metrics port, writing
    its ports to the `ready` file, with the flags in `args`."""
    return [
        str(CLI),
        "serve",
        "--grpc-port",
        str(grpc_port),
        "--metrics-port",
        "0",
        "--ready-file",
        str(ready),
        *args,
    ]


def launch(
    directory: Path,
    *args: str,
    name: str = "test",
    env: dict[str, str] | None = None,
    timeout: float = 30.0,
    host: str = "127.0.0.1",
    grpc_port: int = 0,
) -> ServerProcess:
    """Starts `cugar-metrics serve` (extra flags in `args`) and waits for its ready file.

    It listens on `host` (gRPC on `grpc_port`, 0 for a free one; metrics on a free port).
    The log and the ready file are written to `directory` under `name`. Without
    `--auth-keys-file` in `args` the server is started with `--no-auth`; with it and without
    `--metrics-basic-auth-file`, with `--metrics-open`.
    """
    if "--auth-keys-file" not in args:
        args = ("--no-auth", *args)
    elif "--metrics-basic-auth-file" not in args and "--metrics-open" not in args:
        args = ("--metrics-open", *args)
    ready = directory / f"{name}.ready.json"
    log = directory / f"{name}.log"
    ready.unlink(missing_ok=True)  # a restart under the same name waits for its own file
    with log.open("wb") as out:
        proc = subprocess.Popen(
            serve_command(ready, "--host", host, "--replica", name, *args, grpc_port=grpc_port),
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    info = wait_for_ready(proc, ready, log, timeout, name)
    assert info["pid"] == proc.pid
    return ServerProcess(proc, int(info["grpc_port"]), int(info["metrics_port"]), log, host)


class ServerStartError(RuntimeError):
    """A server process that exited, or wrote no ready file in time; the message names its
    log."""


def wait_for_ready(
    proc: subprocess.Popen[bytes], ready: Path, log: Path, timeout: float, name: str = "server"
) -> dict[str, Any]:
    """What `cugar-metrics serve --ready-file` wrote (pid, ports), once the file holds it.
    Raises ServerStartError if the process exits first, or stops it and raises once
    `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise ServerStartError(
                f"{name} exited with {proc.returncode}; its log {log}:\n"
                + log.read_text(errors="replace")
            )
        try:
            info: dict[str, Any] = json.loads(ready.read_text())
            return info
        except (FileNotFoundError, json.JSONDecodeError):
            pass  # not yet written, or half written
        if time.monotonic() > deadline:
            stop_process(proc)
            raise ServerStartError(f"{name} wrote no ready file in {timeout:.0f}s: see {log}")
        time.sleep(0.05)


def tool(name: str) -> str:
    """A tool installed by scripts/install-tools.sh; its absence fails the test."""
    path = shutil.which(name, path=f"{ROOT / '.tools' / 'bin'}{os.pathsep}{os.environ['PATH']}")
    assert path, f"{name} is not installed: run scripts/install-tools.sh"
    return path
