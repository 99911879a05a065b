"""Every language's client through the fault scenarios of clients/CONFORMANCE.md.

Each test starts real `cugar-metrics serve` processes (late, restarted, rate limited, frozen
with SIGSTOP, two replicas behind one name, or none at all), runs
`clients/<lang>/conformance.sh --scenario NAME`, reads the program's own account (its last
JSON line on stdout) and checks the exact server-side counts through /metrics. A program that
does not support a scenario fails the test; nothing is skipped. `-k python` (or go,
typescript, java) selects one language.
"""

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
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.server.auth.helpers import Keys
from tests.support.serverproc import ServerProcess, launch

pytestmark = pytest.mark.conformance

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = ["python", "go", "typescript", "java"]
#: Generous: the JVM and Node start slowly on a shared machine.
PROGRAM_TIMEOUT = 300
REPLICAS_NAME = "cugar-replicas.test"
REPLICA_ADDRESSES = ("127.0.0.2", "127.0.0.3")
FIELDS = ("recorded", "delivered", "dropped", "rejected", "rate_limited", "waited_seconds")


class Program:
    """One run of `clients/<lang>/conformance.sh`, its output read as it comes."""

    def __init__(self, language: str, target: str, profile: str, scenario: str, *extra: str):
        wrapper = ROOT / "clients" / language / "conformance.sh"
        assert wrapper.is_file(), f"{wrapper.relative_to(ROOT)} is missing"
        self.scenario = scenario
        self.command = [
            "bash",
            str(wrapper),
            "--target",
            target,
            "--profile",
            profile,
            "--scenario",
            scenario,
            *extra,
        ]
        self.proc = subprocess.Popen(
            self.command,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "NO_COLOR": "1"},
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.ready = threading.Event()
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: Any, lines: list[str]) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))
            if lines is self.stdout and line.strip() == "ready":
                self.ready.set()

    def output(self) -> str:
        return (
            f"$ {' '.join(self.command)}\n--- stdout\n"
            + "\n".join(self.stdout)
            + "\n--- stderr\n"
            + "\n".join(self.stderr)
        )

    def running(self) -> bool:
        return self.proc.poll() is None

    def finish(self) -> dict[str, Any]:
        """Waits for the exit; requires exit 0 and returns the account of the last JSON line."""
        try:
            self.proc.wait(timeout=PROGRAM_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"no exit in {PROGRAM_TIMEOUT} s\n{self.output()}") from None
        for reader in self._readers:
            reader.join(10)
        assert self.proc.returncode == 0, f"exited {self.proc.returncode}\n{self.output()}"
        lines = [line for line in self.stdout if line.strip()]
        assert lines, f"no output\n{self.output()}"
        try:
            account = json.loads(lines[-1])
        except json.JSONDecodeError:
            raise AssertionError(f"the last line is not JSON\n{self.output()}") from None
        assert isinstance(account, dict), self.output()
        assert account.get("scenario") == self.scenario, self.output()
        missing = [name for name in FIELDS if not isinstance(account.get(name), int | float)]
        assert not missing, f"fields missing from the account: {missing}\n{self.output()}"
        return account

    def kill(self) -> None:
        if self.running():
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def programs() -> Iterator[list[Program]]:
    """Programs started by a test, killed if the test fails before they exit."""
    started: list[Program] = []
    yield started
    for program in started:
        program.kill()


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    """Servers started by a test; each must drain to exit 0 (unless the test stopped it)."""
    started: list[ServerProcess] = []
    yield started
    for server in started:
        if server.proc.poll() is None:
            os.kill(server.proc.pid, signal.SIGCONT)  # in case a test left it stopped
            assert server.stop() == 0, server.output()


def run(programs: list[Program], language: str, *args: str) -> Program:
    program = Program(language, *args)
    programs.append(program)
    return program


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def scrape(server: ServerProcess) -> list[Any]:
    with urllib.request.urlopen(server.metrics_url, timeout=10) as response:
        return list(text_string_to_metric_families(response.read().decode()))


def ingest(server: ServerProcess) -> dict[str, float]:
    """cugar_ingest_executions_total by result (accepted, duplicate, rejected)."""
    found: dict[str, float] = {}
    for family in scrape(server):
        for sample in family.samples:
            if sample.name == "cugar_ingest_executions_total":
                found[sample.labels["result"]] = sample.value
    return found


def executions(server: ServerProcess, profile: str) -> dict[str, float]:
    """cugar_executions_total of one profile by outcome (summed over error types)."""
    found: dict[str, float] = {}
    for family in scrape(server):
        for sample in family.samples:
            if (
                sample.name == "cugar_executions_total"
                and sample.labels.get("profile") == profile
                and sample.value
            ):
                outcome = sample.labels["outcome"]
                found[outcome] = found.get(outcome, 0.0) + sample.value
    return found


def wait_until(condition: Any, what: str, program: Program, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert program.running(), f"the program exited before {what}\n{program.output()}"
        assert time.monotonic() < deadline, f"no {what} in {timeout:.0f} s\n{program.output()}"
        time.sleep(0.02)


@pytest.mark.parametrize("language", LANGUAGES)
def test_late_server(
    language: str, tmp_path: Path, programs: list[Program], servers: list[ServerProcess]
) -> None:
    """The server starts 3 s after the agent: the recorder keeps its 11 and delivers them."""
    port = free_port()
    profile = f"late_{language}"
    program = run(programs, language, f"127.0.0.1:{port}", profile, "late-server")
    time.sleep(3)  # the scenario itself: the agent runs while nothing listens
    assert program.running(), f"the program did not wait for the server\n{program.output()}"
    server = launch(tmp_path, name="late", grpc_port=port)
    servers.append(server)

    account = program.finish()
    assert (account["recorded"], account["delivered"], account["dropped"]) == (11, 11, 0), (
        program.output()
    )
    assert ingest(server)["accepted"] == 11
    assert ingest(server)["rejected"] == 0
    assert executions(server, profile) == {"success": 7, "failure": 4}


@pytest.mark.parametrize("language", LANGUAGES)
def test_restart(
    language: str, tmp_path: Path, programs: list[Program], servers: list[ServerProcess]
) -> None:
    """SIGTERM and a new server on the same port mid-run: 40 accepted exactly once."""
    state = tmp_path / "state.bin"
    first = launch(tmp_path, "--state-file", str(state), name="restart-first")
    servers.append(first)
    profile = f"restart_{language}"
    program = run(programs, language, first.target, profile, "restart")
    wait_until(lambda: ingest(first).get("accepted", 0) >= 1, "first delivery", program)
    accepted_before = ingest(first)["accepted"]
    assert first.stop() == 0, first.output()
    second = launch(
        tmp_path, "--state-file", str(state), name="restart-second", grpc_port=first.grpc_port
    )
    servers.append(second)

    account = program.finish()
    assert accepted_before < 40, f"the restart fell after the run ({accepted_before} accepted)"
    assert (account["recorded"], account["delivered"], account["dropped"]) == (40, 40, 0), (
        program.output()
    )
    # The restarted server restored the first one's counts and ids from the state file.
    assert ingest(second)["accepted"] == 40, program.output()
    assert ingest(second)["rejected"] == 0
    assert sum(executions(second, profile).values()) == 40


@pytest.mark.parametrize("language", LANGUAGES)
def test_retry_info_over_cap(
    language: str, tmp_path: Path, programs: list[Program], servers: list[ServerProcess]
) -> None:
    """A RetryInfo delay of 60 s, capped at 1 s: three waits of the cap, then the error."""
    keys = Keys(tmp_path / "keys.json")
    key = keys.add("agent", "recorder")
    server = launch(
        tmp_path,
        "--auth-keys-file",
        str(keys.path),
        "--rate-limit-recorder",
        "1/m:1",
        name="limited",
    )
    servers.append(server)
    profile = f"capped_{language}"
    program = run(
        programs,
        language,
        server.target,
        profile,
        "retry-info-over-cap",
        "--retry-info-cap",
        "1",
        "--api-key",
        key,
    )
    account = program.finish()
    assert account["rate_limited"] == 1, program.output()
    assert 3 <= account["waited_seconds"] < 10, program.output()
    assert ingest(server)["accepted"] == 1
    assert sum(executions(server, profile).values()) == 1
    # The second call: its first attempt and three retries, each refused.
    limited = [
        sample.value
        for family in scrape(server)
        for sample in family.samples
        if sample.name == "cugar_rate_limited_total" and sample.labels["role"] == "recorder"
    ]
    assert limited == [4.0]


@pytest.mark.parametrize("language", LANGUAGES)
def test_short_deadline(
    language: str, tmp_path: Path, programs: list[Program], servers: list[ServerProcess]
) -> None:
    """The server freezes for 3 s under 0.5 s attempt deadlines: all 20 still arrive."""
    server = launch(tmp_path, name="frozen")
    servers.append(server)
    profile = f"deadline_{language}"
    program = run(
        programs, language, server.target, profile, "short-deadline", "--attempt-deadline", "0.5"
    )
    assert program.ready.wait(PROGRAM_TIMEOUT), f"no 'ready' line\n{program.output()}"
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        time.sleep(3)  # the scenario itself: the server does no work for 3 s
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)

    account = program.finish()
    assert (account["recorded"], account["delivered"], account["dropped"]) == (20, 20, 0), (
        program.output()
    )
    # A timed-out attempt may have arrived: its retry is then a duplicate, never a new one.
    assert ingest(server)["accepted"] == 20, program.output()
    assert ingest(server)["rejected"] == 0
    assert sum(executions(server, profile).values()) == 20


def replica_addresses() -> set[str]:
    try:
        infos = socket.getaddrinfo(REPLICAS_NAME, None, socket.AF_INET, socket.SOCK_STREAM)
    except socket.gaierror:
        return set()
    return {str(info[4][0]) for info in infos}


@pytest.mark.parametrize("language", LANGUAGES)
def test_two_replicas(
    language: str, tmp_path: Path, programs: list[Program], servers: list[ServerProcess]
) -> None:
    """Two replicas behind one name: round robin sends to both, 20 accepted in all."""
    resolved = replica_addresses()
    assert resolved >= set(REPLICA_ADDRESSES), (
        f"{REPLICAS_NAME} resolves to {sorted(resolved) or 'nothing'}, not to both "
        f"{' and '.join(REPLICA_ADDRESSES)}: run scripts/install-tools.sh as root "
        "(it adds the /etc/hosts entries)"
    )
    port = free_port(REPLICA_ADDRESSES[0])
    replicas = [
        launch(tmp_path, name=f"replica-{i}", host=address, grpc_port=port)
        for i, address in enumerate(REPLICA_ADDRESSES)
    ]
    servers.extend(replicas)
    profile = f"replicas_{language}"
    program = run(programs, language, f"{REPLICAS_NAME}:{port}", profile, "two-replicas")
    account = program.finish()
    assert (account["recorded"], account["delivered"]) == (20, 20), program.output()
    accepted = [ingest(replica)["accepted"] for replica in replicas]
    assert sum(accepted) == 20, accepted
    assert min(accepted) >= 1, f"one replica got every call: {accepted}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_overflow(language: str, programs: list[Program]) -> None:
    """No server: a buffer of 5 takes 8, drops the oldest 3, and close() drops the other 5."""
    program = run(
        programs,
        language,
        f"127.0.0.1:{free_port()}",
        f"overflow_{language}",
        "overflow",
        "--buffer-size",
        "5",
        "--close-timeout",
        "1",
    )
    account = program.finish()
    assert (account["recorded"], account["delivered"], account["dropped"]) == (8, 0, 8), (
        program.output()
    )
