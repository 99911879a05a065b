"""Every language's client runs the conformance scenario against a fresh server process.

For each language, `clients/<lang>/conformance.sh` (built beforehand by that language's CI
script) runs the scenario of the shared brief; this harness then reads the server through
GetDashboard and GET /metrics and requires exactly the scenario's numbers. A missing wrapper
is a failure, never a skip.
"""

from __future__ import annotations

import os
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar_metrics_client import Client
from tests.support.serverproc import ServerProcess, launch

pytestmark = pytest.mark.conformance

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = ["python", "go", "typescript", "java"]
#: Generous: the JVM and Node start slowly on a shared machine.
SCENARIO_TIMEOUT = 300


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A fresh `cugar-metrics serve` process on free ports; SIGTERM must drain it to exit 0."""
    process = launch(tmp_path, name="conformance")
    try:
        yield process
    finally:
        code = process.stop()
    assert code == 0, process.output()


def nonzero_samples(server: ServerProcess, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of one sample name with a non-zero value, keyed by sorted labels."""
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    found: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.value != 0:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def labels(**pairs: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(pairs.items()))


@pytest.mark.parametrize("language", LANGUAGES)
def test_client_conformance(language: str, server: ServerProcess) -> None:
    """The scenario passes in the client's own program, and the server saw exactly it."""
    wrapper = ROOT / "clients" / language / "conformance.sh"
    assert wrapper.is_file(), f"{wrapper.relative_to(ROOT)} is missing"
    profile = f"conf_{language}"
    run = subprocess.run(
        ["bash", str(wrapper), "--target", server.target, "--profile", profile],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SCENARIO_TIMEOUT,
        env={**os.environ, "NO_COLOR": "1"},
    )
    output = f"--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}"
    assert run.returncode == 0, f"{wrapper.relative_to(ROOT)} exited {run.returncode}\n{output}"
    violation_lines = [
        line
        for line in run.stdout.splitlines()
        if line.startswith("field violation: execution.duration: ")
    ]
    assert len(violation_lines) == 1, output
    assert len(violation_lines[0]) > len("field violation: execution.duration: "), output

    with Client(server.target, timeout=10.0) as client:
        dashboard = client.get_dashboard(profile=profile)
    counts = dashboard.executions
    assert (counts.total, counts.succeeded, counts.failed, counts.total_steps) == (3, 2, 1, 3)
    assert [(e.error_type, e.count) for e in dashboard.error_types] == [("ToolError", 1)]
    assert [(p.profile, p.total, p.succeeded, p.failed) for p in dashboard.profiles] == [
        (profile, 3, 2, 1)
    ]
    assert [(t.domain, t.tool, t.calls, t.errors, t.skipped) for t in dashboard.tools] == [
        ("engagement", "send_email", 1, 0, 0),
        ("qualification", "score_lead", 1, 1, 0),
        ("territory", "search_accounts", 1, 0, 0),
    ]
    assert (dashboard.budget.spent, dashboard.budget.executions_with_budget) == (2.0, 1)
    assert [(a.decision, a.count) for a in dashboard.approvals.by_decision] == [
        (pb.APPROVAL_DECISION_APPROVED, 1),
        (pb.APPROVAL_DECISION_DENIED, 0),
        (pb.APPROVAL_DECISION_TIMEOUT, 0),
        (pb.APPROVAL_DECISION_CANCELLED, 0),
    ]
    ingest = dashboard.ingest
    assert (ingest.accepted, ingest.duplicate, ingest.rejected) == (3, 1, 2)
    assert dashboard.scope == pb.DASHBOARD_SCOPE_REPLICA

    assert nonzero_samples(server, "cugar_executions_total") == {
        labels(profile=profile, outcome="success", error_type=""): 2.0,
        labels(profile=profile, outcome="failure", error_type="ToolError"): 1.0,
    }
    # Durations arrived as measured seconds (1.5 + 0.5 and 2), not as clock readings.
    assert nonzero_samples(server, "cugar_execution_duration_seconds_sum") == {
        labels(profile=profile, outcome="success"): 2.0,
        labels(profile=profile, outcome="failure"): 2.0,
    }
    assert nonzero_samples(server, "cugar_tool_calls_total") == {
        labels(domain="territory", tool="search_accounts", status="success"): 1.0,
        labels(domain="qualification", tool="score_lead", status="error"): 1.0,
        labels(domain="engagement", tool="send_email", status="success"): 1.0,
    }
    assert nonzero_samples(server, "cugar_ingest_executions_total") == {
        labels(result="accepted"): 3.0,
        labels(result="duplicate"): 1.0,
        labels(result="rejected"): 2.0,
    }
    assert nonzero_samples(server, "cugar_approvals_total") == {labels(decision="approved"): 1.0}
    assert nonzero_samples(server, "cugar_budget_spent_total") == {labels(profile=profile): 2.0}
